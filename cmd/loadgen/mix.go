package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Actions a virtual user takes.
const (
	actBrowse   = "browse"   // GET /v1/products, then GET /v1/products/{sku}
	actProduct  = "product"  // GET /v1/products/{sku}
	actCart     = "cart"     // PUT /v1/cart/items/{sku}, GET /v1/cart, sometimes DELETE
	actCheckout = "checkout" // POST /v1/orders with items and an Idempotency-Key
	actBuyCart  = "buycart"  // PUT /v1/cart/items/{sku}, then POST /v1/orders with no items: the cart is bought
)

var knownActions = []string{actBrowse, actProduct, actCart, actCheckout, actBuyCart}

// mix picks actions at random in proportion to their weights.
type mix struct {
	actions []string
	cumul   []int // running sums of the weights
}

// parseMix reads "browse=60,cart=30,checkout=10".
func parseMix(s string) (mix, error) {
	var m mix
	total := 0
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return mix{}, fmt.Errorf("mix: %q is not action=weight", part)
		}
		if !isKnown(name) {
			return mix{}, fmt.Errorf("mix: unknown action %q (known: %s)", name, strings.Join(knownActions, ", "))
		}
		if seen[name] {
			return mix{}, fmt.Errorf("mix: %q given twice", name)
		}
		seen[name] = true
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 {
			return mix{}, fmt.Errorf("mix: weight of %s must be a whole number ≥ 0", name)
		}
		if n == 0 {
			continue
		}
		total += n
		m.actions = append(m.actions, name)
		m.cumul = append(m.cumul, total)
	}
	if total == 0 {
		return mix{}, fmt.Errorf("mix: no action has a weight")
	}
	return m, nil
}

func isKnown(name string) bool {
	for _, a := range knownActions {
		if a == name {
			return true
		}
	}
	return false
}

// pick maps a number in [0, total weight) to its action.
func (m mix) pickAt(n int) string {
	for i, c := range m.cumul {
		if n < c {
			return m.actions[i]
		}
	}
	return m.actions[len(m.actions)-1]
}

func (m mix) pick(r *rand.Rand) string { return m.pickAt(r.IntN(m.cumul[len(m.cumul)-1])) }
