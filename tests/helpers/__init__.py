"""Small fixture builders shared by the format tests."""
