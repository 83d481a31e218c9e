"""Imports every domain's tables so ``Base.metadata`` is complete (Alembic, tests, checks)."""

from carebridge.auth import models as auth_models  # noqa: F401
from carebridge.consultations import models as consultation_models  # noqa: F401
from carebridge.core import audit, idempotency  # noqa: F401
from carebridge.database.base import Base
from carebridge.directory import models as directory_models  # noqa: F401
from carebridge.events import models as event_models  # noqa: F401
from carebridge.notifications import models as notification_models  # noqa: F401
from carebridge.openplatform import models as openplatform_models  # noqa: F401
from carebridge.patients import models as patient_models  # noqa: F401
from carebridge.prescribing import models as prescribing_models  # noqa: F401
from carebridge.scheduling import models as scheduling_models  # noqa: F401
from carebridge.supervision import models as supervision_models  # noqa: F401

metadata = Base.metadata
