package api

// ChunkRows exposes chunkRows to the external tests that size a batch to
// span several publish transactions.
const ChunkRows = chunkRows

// AccountCountsTTL exposes how long a publish reuses an account's endpoint
// count.
const AccountCountsTTL = accountCountsTTL
