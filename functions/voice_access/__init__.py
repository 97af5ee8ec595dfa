"""Access to OpenAI's voice APIs for apps that must never hold the API key: today minting Realtime client
secrets; its layers and where each kind of change goes are in docs/architecture.md."""
