"""The console's own data services: what it reads from the chain's topics (through
:mod:`shulian.io`) and how pages query it. Kept apart from the pages so that shared services
(dead-letter summaries, reason codes in words) can replace these modules."""
