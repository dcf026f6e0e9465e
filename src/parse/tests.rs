// tests for parse
