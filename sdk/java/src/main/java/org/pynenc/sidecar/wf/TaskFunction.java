package org.pynenc.sidecar.wf;

/**
 * A task's code. {@code task} is the workflow context of the task's own run (its scope is
 * the task's invocation). The returned value is recorded as the result (JSON, via Gson); a
 * thrown exception is recorded as the task's failure.
 */
@FunctionalInterface
public interface TaskFunction {
  Object run(Context task) throws Exception;
}
