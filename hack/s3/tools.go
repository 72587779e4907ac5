//go:build tools

// Pins the S3-compatible server the test tiers run (see hack/s3/README.md).
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
