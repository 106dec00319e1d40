"""AWS Bedrock as a direct provider: OpenAI chat in, the Converse / ConverseStream APIs upstream."""

from plugins.bedrock.provider import Bedrock as Plugin

__all__ = ["Plugin"]
