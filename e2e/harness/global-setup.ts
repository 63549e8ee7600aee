// Builds (or finds cached) the control-plane binaries once, before any test file starts
// its own control plane.
import { ensureBinaries } from '../../devenv/controlplane/binaries.js';

export default function setup(): void {
  ensureBinaries();
}
