package org.pynenc.sidecar.wf;

/**
 * Thrown by an operation called while a custom operation's generator runs: the generator's
 * value is recorded once and the generator does not run on replay, so operations inside it
 * would take positions only the first time (docs/client-contract.md).
 */
public final class OperationInGeneratorException extends IllegalStateException {
  public static final String REASON = "OPERATION_IN_GENERATOR";

  OperationInGeneratorException(String kind, String custom) {
    super(REASON + ": a workflow operation (" + kind + ") was called inside the generator of custom operation \""
        + custom + "\"; call it before the custom operation and use its value inside the generator");
  }
}
