//! A model behind an OpenAI-compatible server (placeholder until the remote engine lands).
