"""orgs' calls to its peers, one module per peer service."""
