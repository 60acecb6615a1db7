"""websearch: web search for LLM tools over plain HTTP (SearXNG, DuckDuckGo HTML, Brave Search API)."""
