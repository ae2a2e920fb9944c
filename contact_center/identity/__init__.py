"""Who is who: sign-in and cookie sessions, password hashing, user accounts, the audit trail."""
