"""Joint verification (联合校验): answering claims from the verification store."""
