"""auth's rules, one module a responsibility:

```
sessions.py            SessionService     login, refresh-token rotation (and reuse detection),
                                          logout, listing and ending sessions, revocation
accounts.py            AccountService     registration, password change, disabling and
                                          enabling accounts, seeding the platform admin;
                                          ends sessions through SessionService
client_credentials.py  ClientCredentials  other services' OAuth2 client-credentials grant
org_tokens.py          OrgTokenService    org-scoped access tokens (membership from orgs)
personal_tokens.py     PersonalTokenService  personal access tokens (ipt_...), and vouching
                                          for them to the other services
account_deletion.py    AccountDeletionService  deleting an account (DELETE /me), carried to
                                          users and orgs by the outbox
```

Services never commit: the request's session dependency commits when the handler returns.
Neither imports FastAPI.
"""

from auth.service.account_deletion import AccountDeletionService
from auth.service.accounts import AccountService, user_event
from auth.service.client_credentials import ClientCredentials
from auth.service.org_tokens import OrgTokenService
from auth.service.personal_tokens import PersonalTokenService
from auth.service.sessions import ClientInfo, SessionService

__all__ = [
    "AccountDeletionService",
    "AccountService",
    "ClientCredentials",
    "ClientInfo",
    "OrgTokenService",
    "PersonalTokenService",
    "SessionService",
    "user_event",
]
