"""Database: models, engines and sessions, migrations."""
