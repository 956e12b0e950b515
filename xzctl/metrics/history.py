"""How much metric history the tools work with: one limit for what is read and what is written."""

# The forecast's --days reads at most this (five weeks: enough weekly seasons, bounded fit time and query size);
# the sandbox's --history backfills at most as much, so everything it writes can be read.
MAX_HISTORY_DAYS = 35
