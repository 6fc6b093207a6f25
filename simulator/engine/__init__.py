"""Provider-neutral engine: clock-driven tasks, blobs, wallets, webhooks and the journal."""

from simulator.engine.blobs import Blob, BlobStore, URLSigner
from simulator.engine.engine import Durations, Engine
from simulator.engine.jobs import Job
from simulator.engine.journal import Journal, JournalEntry
from simulator.engine.moderation import BLOCK_TRIGGER, Moderation
from simulator.engine.tasks import TERMINAL, Failure, OutputImage, Phase, Task, TaskStore, Timeline
from simulator.engine.webhooks import Delivery, RetryPolicy, WebhookDispatcher

__all__ = [
    "BLOCK_TRIGGER", "TERMINAL", "Blob", "BlobStore", "Delivery", "Durations", "Engine", "Failure",
    "Job", "Journal", "JournalEntry", "Moderation", "OutputImage", "Phase", "RetryPolicy", "Task", "TaskStore",
    "Timeline", "URLSigner", "WebhookDispatcher",
]
