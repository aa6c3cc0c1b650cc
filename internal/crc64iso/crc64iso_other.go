//go:build !amd64 || purego

package crc64iso

const hasCLMUL = false

func updateCLMUL(crc uint64, p []byte) uint64 {
	panic("crc64iso: no carry-less multiplication path on this platform")
}
