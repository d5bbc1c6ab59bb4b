"""provisioning: identities, broker credentials and ACLs, enrolment bundles."""

__version__ = "0.1.0"
