// Go's net/http for the HTTP comparison (benches/scripts/http.py): `httpserver <addr>`.
// "/json" answers the 1 KiB JSON response (the fields of benches/src/http_json.rs, built per
// request and marshalled with encoding/json); anything else "Hello, World!". GOMAXPROCS
// comes from the environment.
package main

import (
	"encoding/json"
	"net/http"
	"os"
)

type item struct {
	ID     uint32    `json:"id"`
	Name   string    `json:"name"`
	Active bool      `json:"active"`
	Score  float64   `json:"score"`
	Tags   [2]string `json:"tags"`
}

type payload struct {
	Message string `json:"message"`
	Total   uint32 `json:"total"`
	Items   []item `json:"items"`
}

func main() {
	addr := "127.0.0.1:8080"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	hello := []byte("Hello, World!")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(hello)
	})
	http.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		items := make([]item, 16)
		for i := range items {
			items[i] = item{ID: uint32(i), Name: "gopher", Active: i%2 == 0,
				Score: float64(i) * 1.5, Tags: [2]string{"fast", "json"}}
		}
		b, err := json.Marshal(payload{Message: "Hello, World!", Total: 16, Items: items})
		if err != nil {
			panic(err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	if err := http.ListenAndServe(addr, nil); err != nil {
		panic(err)
	}
}
