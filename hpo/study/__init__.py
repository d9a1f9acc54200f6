"""A study in its storage: storage URLs, opening (create-or-resume, or load) and reading it, its artifacts."""
