"""The AI assistant (issue 22): an agent inside orvad that builds, deploys and debugs functions with the operator.

providers.py     the provider-neutral chat interface (ChatModel, ChatMessage, stream events) and the two adapters
                 over the official SDKs (Anthropic Messages; OpenAI chat completions, for any OpenAI-compatible
                 endpoint through base_url)
provider_service.py  provider configs: CRUD, API keys sealed with the secrets master key, model_for(id)
"""
