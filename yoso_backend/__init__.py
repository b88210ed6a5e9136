"""yoso_backend package."""
