import pytest

from tests.privacy.helpers import build


@pytest.fixture
def pw(world, django_capture_on_commit_callbacks):
    return build(world, django_capture_on_commit_callbacks)
