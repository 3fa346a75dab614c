"""Every intervention by the name a rule's `intervention:` gives it."""
from plasticity.injection import Inject
from plasticity.interventions import BASIC
from plasticity.redo import ReDo

INTERVENTIONS = {**BASIC, "redo": ReDo, "inject": Inject}
