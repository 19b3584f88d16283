"""The chain's stages: pure processing of one batch of messages into output messages.

The Faust agents in ``streams/`` only decode Kafka events into :class:`InMessage`, call a
stage, and produce the :class:`OutMessage` list. Nothing here imports Kafka, Faust or HTTP.
"""
