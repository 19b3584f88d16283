"""The console: one web application for the data governance office, the agencies and auditors.

- :mod:`shulian.console.auth`        principals, rights, tokens, signed sessions (pure)
- :mod:`shulian.console.principals`  the token book from the stack's configuration
- :mod:`shulian.console.app`         the ASGI app shell: login, CSRF, 403s, security headers
- :mod:`shulian.console.pages`       the pages
- :mod:`shulian.console.data`        the console's own data services (store, tailer, queries,
                                     words, health), kept apart so that shared services can
                                     replace them
- :mod:`shulian.console.serve`       building and running it (``shulian console``)

Every asset (CSS, SVG plots) is served by the app itself: no CDN, no web fonts, no script.
"""
