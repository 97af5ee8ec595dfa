"""Token vending: mint OpenAI Realtime client secrets for apps that must never hold the API key."""
