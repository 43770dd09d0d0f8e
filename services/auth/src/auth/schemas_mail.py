"""Request and response bodies of the account-lifecycle-by-mail endpoints (auth.api_mail)."""

from __future__ import annotations

from pydantic import BaseModel, EmailStr, Field

PASSWORD_HELP = "8 to 128 characters, not a common one"  # noqa: S105 - help text


class MailedToken(BaseModel):
    token: str = Field(
        min_length=1, max_length=512, description="The `token` query parameter of the mail's link"
    )


class ForgotPassword(BaseModel):
    email: str = Field(min_length=1, max_length=320)


class ResetPassword(MailedToken):
    new_password: str = Field(
        max_length=4096,
        description=PASSWORD_HELP,
        json_schema_extra={"minLength": 8, "maxLength": 128},
    )


class EmailChange(BaseModel):
    new_email: EmailStr = Field(max_length=320)
    current_password: str = Field(min_length=1, max_length=4096)


class Accepted(BaseModel):
    detail: str
