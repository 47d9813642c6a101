import pytest

from feedback import senders
from tests.privacy.helpers import build


@pytest.fixture
def pw(world, django_capture_on_commit_callbacks):
    return build(world, django_capture_on_commit_callbacks)


@pytest.fixture(autouse=True)
def _clear_outboxes():
    """The SMS and IVR test senders keep what they sent in module lists: empty them around each test."""
    senders.sms_outbox.clear()
    senders.ivr_outbox.clear()
    yield
    senders.sms_outbox.clear()
    senders.ivr_outbox.clear()
