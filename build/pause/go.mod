// Builds the pod sandbox "pause" binary for the lab.
module carotate.local/build/pause

go 1.26.0
