"""auth's calls to its peers, one module a peer, each over the app's `ServiceClient`."""
