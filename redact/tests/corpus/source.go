package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// ErrNotFound is returned when an order does not exist.
var ErrNotFound = errors.New("order not found")

type Order struct {
	ID         string    `json:"id"`
	CustomerID string    `json:"customer_id"`
	TotalCents int64     `json:"total_cents"`
	CreatedAt  time.Time `json:"created_at"`
}

type Store interface {
	Get(ctx context.Context, id string) (*Order, error)
}

func NewHandler(store Store, timeout time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/orders/", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		id := r.URL.Path[len("/api/v1/orders/"):]
		order, err := store.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(order)
	})
	return mux
}

func checkPassword(hash []byte, password string) bool {
	token := computeToken(password)
	return subtleCompare(hash, token)
}
