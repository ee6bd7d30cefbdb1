// The session-manager-plugin's own main (src/sessionmanagerplugin-main/main.go upstream), built
// from the Go module proxy through this wrapper module: upstream has no go.mod, and without the pin
// in go.mod `github.com/twinj/uuid` resolves to v1.0.0, whose API the plugin does not compile
// against (upstream vendors 89173bcdda19).
package main

import (
	"os"

	"github.com/aws/session-manager-plugin/src/sessionmanagerplugin/session"
	_ "github.com/aws/session-manager-plugin/src/sessionmanagerplugin/session/portsession"
	_ "github.com/aws/session-manager-plugin/src/sessionmanagerplugin/session/shellsession"
)

func main() {
	session.ValidateInputAndStartSession(os.Args, os.Stdout)
}
