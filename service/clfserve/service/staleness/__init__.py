"""clfserve.service.staleness: scheduled re-evaluation of the served model.

`extension.install` builds the monitor for one app: gauges in the app's registry, the routes, and
a lifespan hook that starts the schedule once the model has loaded. Its settings are declared
with the service's (`clfserve.service.settings`) and re-exported here; the package imports
nothing heavier, so ``clfserve serve --help`` stays light. Import the parts from their modules
(`monitor`, `record`, `scheduler`, `tracking`).
"""

from clfserve.service.settings import StalenessSettings

__all__ = ["StalenessSettings"]
