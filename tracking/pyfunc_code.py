"""The model code MLflow keeps with every IZF model (MLflow's "models from code"): one IZFPyfunc.

Logging the class from this file, rather than a pickled instance, lets MLflow load the model without
unpickling code (and without its CloudPickle warning).
"""

from mlflow.models import set_model

from tracking.model import IZFPyfunc

set_model(IZFPyfunc())
