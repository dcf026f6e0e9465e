// tests for detect
