"""HTTPS interception end-to-end tests (a package, so that this directory's
conftest is imported as tls.conftest and never displaces the parent's
`conftest` module that the top-level test files import by that name)."""
