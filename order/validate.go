package order

import (
	"time"
)

func validateLines(lines []Line) error {
	if len(lines) > MaxLines {
		return ErrTooManyLines
	}
	seen := make(map[string]bool, len(lines))
	for _, l := range lines {
		switch {
		case !skuPattern.MatchString(l.SKU):
			return ErrInvalidSKU.WithMessage("%q is not a SKU", l.SKU)
		case l.Quantity < 1 || l.Quantity > MaxQuantity:
			return ErrInvalidQuantity.WithMessage("the quantity of %q must be 1 to %d", l.SKU, MaxQuantity)
		case seen[l.SKU]:
			return ErrDuplicateSKU.WithMessage("SKU %q appears twice", l.SKU)
		}
		seen[l.SKU] = true
	}
	return nil
}

// validateCard checks the card by payment's own rules, so that a card payment would
// refuse is refused before any stock is reserved.
func validateCard(c Card, now time.Time) error {
	if c == (Card{}) {
		return ErrMissingCard
	}
	return c.Validate(now)
}
