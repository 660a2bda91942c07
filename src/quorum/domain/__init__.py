"""The rules of Quorum: every page, API call, CLI command and job goes through here."""
