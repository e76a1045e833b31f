// Package azure provisions a gohv guest on Microsoft Azure without a
// provisioning agent: it tells the Azure fabric that the VM is ready and
// reads the VM's instance metadata, the two things an agentless Linux image
// does at first boot (Microsoft's "Creating generalized images without a
// provisioning agent"; WALinuxAgent azurelinuxagent/common/protocol/wire.py
// and goal_state.py; cloud-init cloudinit/sources/helpers/azure.py).
//
// The package owns three HTTP conversations and nothing else:
//
//   - WireServer goal state: GET http://WIRESERVER/machine/?comp=goalstate
//     with x-ms-agent-name and x-ms-version: 2012-11-30. The XML answer
//     names the goal-state Incarnation, the Container/ContainerId and the
//     RoleInstanceList/RoleInstance/InstanceId.
//   - WireServer health report: POST http://WIRESERVER/machine?comp=health
//     with Content-Type text/xml; charset=utf-8 and a Health document that
//     echoes those three values with State Ready. Until the fabric receives
//     it, Azure shows the VM as "creating" and eventually fails the
//     deployment.
//   - Instance Metadata Service (IMDS): GET
//     http://169.254.169.254/metadata/instance?api-version=2021-02-01 with
//     Metadata: true, and the user data at
//     /metadata/instance/compute/userData?api-version=2021-01-01&format=text.
//
// Detection: Azure's DHCP server hands out option 245 carrying the
// WireServer's IPv4 address (4 bytes); WireServerFromDHCP validates it. The
// netstack gives the option to the kernel; the kernel decides whether to
// start a Provisioner. The address defaults to 168.63.129.16, the fixed
// address Azure documents for the WireServer.
//
// Custom data is not available here: IMDS serves user data only (its
// compute.customData field is documented as disabled); custom data is
// delivered in ovf-env.xml on the provisioning DVD, which gohv does not read.
//
// Untrusted input: every response body is read through an io.LimitReader
// (a body larger than the limit is an error, not a truncation) and every
// field the package returns is validated (length, character set, syntax).
// Parsers return errors, never panic; each has a fuzz target.
//
// What the package must not touch: it never configures the network (the
// netstack and the kernel own addresses and routes), never follows HTTP
// redirects with its own client, and keeps no global state: a Provisioner is
// a value, two of them can run in one test.
//
// Concurrency: a Provisioner's methods may be called from any goroutine.
// Run starts the ready report and the metadata fetch concurrently and
// returns when both have finished; OnDone runs once, on the goroutine that
// called Run, after Done's channel is closed.
package azure
