"""Review snippets of every length the tests need: short, long (truncated at 64 tokens),
repeated words, punctuation only."""

REVIEWS = [
    "a gorgeous, witty, seductive movie",
    "dull",
    "the plot meanders for two hours and the actors look as bored as the audience "
    "by the time the credits finally roll, which is a long time coming",
    "an unexpectedly moving portrait of a family",
    "?",
    "one of the year's best",
    "a mess " * 20,
]
