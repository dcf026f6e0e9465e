// tests for fingerprint
