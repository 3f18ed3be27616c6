package gateway

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestDocsInBrowser follows the storefront's link to Swagger UI in headless Chromium,
// waits until it lists every operation of openapi.json, tries one, and wants no
// Content-Security-Policy violation on the way: the page needs nothing the policy
// refuses, and nothing from another origin.
func TestDocsInBrowser(t *testing.T) {
	var doc openAPIDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	operations := 0
	for _, ops := range doc.Paths {
		operations += len(ops)
	}
	b := startBrowser(t)
	gw := startGateway(t, withUpstreams(testOptions(newTestKeys(t).verifier), nil))
	b.recordCSPViolations()

	// The way there is the storefront's API link, followed by navigating to it rather
	// than clicking it, so that no evaluation races the page being replaced.
	b.navigate(gw.URL + "/")
	b.waitFor("the storefront's API link", `document.querySelector('nav a[href="/docs"]') !== null`)
	link, err := b.eval(`document.querySelector('nav a[href="/docs"]').href`)
	if err != nil {
		t.Fatal(err)
	}
	b.navigate(fmt.Sprint(link))
	b.waitFor("the API's title", `document.querySelector(".information-container .title").textContent.includes("kitshop")`)
	b.waitFor(fmt.Sprintf("%d operations", operations), fmt.Sprintf(`document.querySelectorAll(".opblock").length === %d`, operations))
	// A style sheet refused (by type or policy) would leave the method badges grey.
	b.waitFor("the style sheet", `getComputedStyle(document.querySelector(".opblock-get .opblock-summary-method")).backgroundColor === "rgb(97, 175, 254)"`)

	// "Try it out" calls the gateway itself: with no inventory instance, the catalogue
	// is 503 service_unavailable, shown as the live response.
	const products = `document.querySelector("#operations-products-get_v1_products")`
	b.do(products + `.querySelector(".opblock-summary-control").click()`)
	b.waitFor("the Try it out button", products+`.querySelector(".try-out__btn") !== null`)
	b.do(products + `.querySelector(".try-out__btn").click()`)
	b.waitFor("the Execute button", products+`.querySelector(".execute") !== null`)
	b.do(products + `.querySelector(".execute").click()`)
	b.waitFor("the live response", products+`.querySelector(".live-responses-table tr.response .response-col_status").textContent.trim() === "503"`)
	b.waitFor("its error code", products+`.querySelector(".live-responses-table tr.response .response-col_description").textContent.includes("service_unavailable")`)

	b.checkNoCSPViolations()
}
