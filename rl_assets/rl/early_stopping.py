"""Early stopping on a validation score: patience since the best, a minimum and a maximum."""

from dataclasses import dataclass, field

PATIENCE = "patience"
BUDGET = "budget"
MAXIMUM = "maximum"


@dataclass
class EarlyStopping:
    """Decide after each iteration whether training should stop.

    Stops when ``patience`` iterations in a row failed to beat the best score by
    more than ``min_improvement`` (never before ``min_iterations``), when the
    episode budget is reached, or at ``max_iterations``. Iterations count from 1.
    """

    patience: int = 3
    min_iterations: int = 5
    max_iterations: int = 30
    min_improvement: float = 0.0
    best_score: float = float("-inf")
    best_iteration: int = 0
    iteration: int = 0
    stop_reason: str | None = None
    history: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience={self.patience}; it must be at least 1")
        if self.min_iterations < 1:
            raise ValueError(f"min_iterations={self.min_iterations}; it must be at least 1")
        if self.max_iterations < self.min_iterations:
            raise ValueError(
                f"max_iterations={self.max_iterations} is below "
                f"min_iterations={self.min_iterations}; raise max_iterations or lower min_iterations"
            )
        if self.min_improvement < 0:
            raise ValueError(f"min_improvement={self.min_improvement}; it must be >= 0")

    def update(self, score: float, budget_reached: bool = False) -> bool:
        """Record one iteration's score; return True when this score is the new best."""
        if self.stop_reason is not None:
            raise RuntimeError(f"training already stopped ({self.stop_reason})")
        self.iteration += 1
        self.history.append(score)
        improved = score > self.best_score + self.min_improvement or self.best_iteration == 0
        if improved:
            self.best_score = score
            self.best_iteration = self.iteration
        if budget_reached:
            self.stop_reason = BUDGET
        elif self.iteration >= self.max_iterations:
            self.stop_reason = MAXIMUM
        elif (
            self.iteration >= self.min_iterations
            and self.iteration - self.best_iteration >= self.patience
        ):
            self.stop_reason = PATIENCE
        return improved

    @property
    def should_stop(self) -> bool:
        return self.stop_reason is not None
