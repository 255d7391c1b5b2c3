"""What the tests share: waits, in-process servers, tokens, processes, throwaway databases."""
