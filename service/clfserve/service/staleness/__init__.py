"""clfserve.service.staleness: scheduled re-evaluation of the served model.

`extension.install` builds the monitor for one app: gauges in the app's registry, the routes, and
a lifespan hook that starts the schedule once the model has loaded. This package imports only its
settings (standard library), so ``clfserve serve --help`` stays light; import the parts from
their modules (`monitor`, `record`, `scheduler`, `tracking`).
"""

from clfserve.service.staleness.settings import StalenessSettings

__all__ = ["StalenessSettings"]
