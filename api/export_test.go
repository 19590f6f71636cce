package api

// ChunkRows exposes chunkRows to the external tests that size a batch to
// span several publish transactions.
const ChunkRows = chunkRows
