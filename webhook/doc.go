// Package webhook is nanohook's receiver library: what a Go program that runs a
// webhook endpoint needs to trust a delivery, and what nanohook itself uses to
// build and sign one.
//
// It depends on nothing but the standard library, so importing it into a
// receiver adds no transitive dependencies.
//
// # Verifying deliveries
//
// Every delivery carries X-Nano-Timestamp (Unix seconds of the attempt) and
// X-Nano-Signature, "v1=" followed by the lowercase hex HMAC-SHA256 of
// "<timestamp>.<body>" keyed with the UTF-8 bytes of the endpoint's secret.
// While a rotated-out secret is still valid, X-Nano-Signature-Previous holds
// the same signature made with the old secret. A [Verifier] checks all of this
// in constant time and refuses timestamps outside a tolerance (five minutes by
// default) so a captured request cannot be replayed later; [Middleware] wraps
// an [http.Handler] with it:
//
//	v := &webhook.Verifier{Secrets: []string{os.Getenv("NANO_WEBHOOK_SECRET")}}
//	http.Handle("/hooks/nano", webhook.Middleware(v, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		body, _ := io.ReadAll(r.Body) // already verified
//		p, err := webhook.ParsePayload(body)
//		...
//	})))
//
// # The canonical body
//
// Bodies are byte-for-byte what JavaScript's JSON.stringify(JSON.parse(body))
// returns, so that a Node.js receiver which re-serialises the parsed payload
// before checking the signature computes the same bytes as one that checks the
// raw body. [Canonicalize] and [AppendCanonical] produce that form from any
// JSON text: no insignificant whitespace, JavaScript's string escaping and
// number formatting, and JavaScript's property order (array-index keys first in
// ascending order, then the other keys in insertion order, duplicate keys
// folded into the position of their first occurrence with the value of the
// last). Values JavaScript cannot hold exactly, such as integers beyond 2^53,
// are refused with a [*CanonicalError] rather than altered. nanohook's event
// data is I-JSON (RFC 7493): [CanonicalizeIJSON] gives the same form and also
// refuses integers beyond ±(2^53 − 1), repeated member names and unpaired
// surrogates, so no receiver's parser can read a delivery differently.
//
// [EncodePayload] builds a whole delivery body in the documented key order and
// [Sign] (or a reusable [Signer]) signs it, which is also what receivers need to
// fabricate deliveries in their own tests.
package webhook
