"""What workloads record and checkers read: snapshots of the data after a launch, messages a WebSocket agent
received, and the names of the values an operation's record carries. Workloads and checkers both import from
here and never from each other."""
