"""Events from observations, pure: the interpreter and its money, ticket, bill, session
and exception rules, the state they keep, and the meter table they read."""
