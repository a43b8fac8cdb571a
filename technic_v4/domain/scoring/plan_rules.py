"""Names and defaults of the trade-plan rules (no numpy: ScanConfig/EvalConfig import this at CLI start-up).
The rules themselves are in `plans`."""

ATR_RULE, STRUCTURE_RULE = "atr", "structure"
PLAN_RULES = (ATR_RULE, STRUCTURE_RULE)
DEFAULT_PLAN_RULE = ATR_RULE
DEFAULT_MIN_REWARD_RISK = 1.5  # PlanOK: RewardRisk at least this (the ATR rule's ratio in a normal regime)
NO_PLAN = "none"  # PlanRule of rows without a plan (Avoid)
