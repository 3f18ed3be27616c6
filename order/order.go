package order

import (
	"time"

	"github.com/kitshop/kitshop/payment"
)

// Money is an amount in minor units (cents) of an ISO 4217 currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// CartItem is a line of a cart, priced from inventory when the cart is shown.
type CartItem struct {
	SKU       string
	Name      string
	Quantity  int
	UnitPrice Money
	LineTotal Money
}

// Cart is a user's cart.
type Cart struct {
	Items []CartItem
	Total Money
}

// Item is a line of an order, with the name and price it was sold at.
type Item struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
}

// Order statuses, as the API shows them.
const (
	StatusPending   = "pending"
	StatusConfirmed = "confirmed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Saga steps: the last step persisted. A pending order moves created → reserved →
// charged → committed (confirmed); a failing one moves to compensating (release, then
// refund of any charge) and then compensated (failed). A confirmed order being cancelled
// moves committed → cancelling → refunded → released (cancelled).
const (
	StepCreated      = "created"
	StepReserved     = "reserved"
	StepCharged      = "charged"
	StepCommitted    = "committed"
	StepCompensating = "compensating"
	StepCompensated  = "compensated"
	StepCancelling   = "cancelling"
	StepRefunded     = "refunded"
	StepReleased     = "released"
)

// Order is an order and the state of its saga.
type Order struct {
	ID       string
	UserID   string
	Email    string
	Status   string
	Step     string
	Items    []Item
	Total    Money
	ChargeID string
	// FromCart orders remove their lines from the cart when confirmed.
	FromCart bool
	// FailureCode and FailureMessage say why a failed order failed.
	FailureCode    string
	FailureMessage string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Line asks for a quantity of a product.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Card is the card a checkout pays with: payment's, checked by payment's rules. It
// lives only in memory, for the length of the saga that charges it: it is never
// stored or logged.
type Card = payment.Card

// Checkout asks to buy Items, or the cart when Items is empty, paying with Card.
type Checkout struct {
	Items []Line
	Card  Card
}
