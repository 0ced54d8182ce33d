// promql-check parses PromQL expressions with Prometheus' own parser.
//
// Input (stdin): a JSON object {"<where>": "<expr>", ...}. Output: one line per invalid
// expression, "<where>: <error>", and exit status 1 when there is any.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	var exprs map[string]string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Fprintf(os.Stderr, "promql-check: reading stdin: %v\n", err)
		os.Exit(2)
	}
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	failed := false
	for _, k := range keys {
		if _, err := parser.ParseExpr(exprs[k]); err != nil {
			fmt.Printf("%s: %v\n", k, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
