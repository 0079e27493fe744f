/*
 * Kernel timing for docs/performance.md: cblas_sgemm against the CSR (10% density) and
 * 2:4 kernels at B = 256, C = OC = 1024, median of 7 rounds of 5 calls; then the int8
 * layer (oomb_cpu_linear_i8_run, inputs quantised before) at C = 1024 and 784, OC = 1024,
 * and the input quantisation, same rounds. Build after
 * `cmake --preset release && cmake --build build/release`:
 *   gcc -O2 -I kernels scripts/bench-int8-kernels.c build/release/kernels/liboomb_kernels_cpu.a \
 *       -lopenblas -lm -o /tmp/bench-int8-kernels && OPENBLAS_NUM_THREADS=1 /tmp/bench-int8-kernels
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>
#include "cpu/lowp_cpu.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static int cmpd(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(void){
  int B=256,C=1024,OC=1024;
  float *x=malloc(4L*B*C),*w=malloc(4L*OC*C),*out=malloc(4L*B*OC),*bias=calloc(OC,4);
  for(long i=0;i<(long)B*C;i++)x[i]=rand()/(float)RAND_MAX-0.5f;
  for(long i=0;i<(long)OC*C;i++)w[i]=rand()/(float)RAND_MAX-0.5f;
  /* csr 10% */
  int32_t *rp=malloc(4L*(OC+1)); uint16_t *ci=malloc(2L*OC*C); float *cv=malloc(4L*OC*C); long n=0; rp[0]=0;
  for(int o=0;o<OC;o++){for(int c=0;c<C;c++) if(rand()%10==0){ci[n]=c;cv[n]=w[(long)o*C+c];n++;} rp[o+1]=n;}
  float *v24=malloc(4L*OC*C/2); uint8_t *i24=malloc(OC*C/8);
  for(long i=0;i<OC*C/2;i++)v24[i]=w[i];
  /* positions: low group (r & 3, 1), high group (0, 2); the time does not depend on them */
  for(long i=0;i<OC*C/8;i++)i24[i]=(uint8_t)(((rand()%6)&3)|0x84);
  double td[7],tc[7],t4[7];
  for(int r=0;r<7;r++){
    double t=now(); for(int k=0;k<5;k++) cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,B,OC,C,1,x,C,w,C,0,out,OC); td[r]=(now()-t)/5*1e3;
    t=now(); for(int k=0;k<5;k++) oomb_cpu_linear_csr_run(out,x,rp,ci,cv,bias,B,C,OC); tc[r]=(now()-t)/5*1e3;
    t=now(); for(int k=0;k<5;k++) oomb_cpu_linear_2of4_run(out,x,v24,i24,bias,B,C,OC); t4[r]=(now()-t)/5*1e3;
  }
  qsort(td,7,8,cmpd);qsort(tc,7,8,cmpd);qsort(t4,7,8,cmpd);
  printf("dense %.2f ms  csr10%% %.2f ms (%.2fx)  2:4 %.2f ms (%.2fx)  [%s]\n",td[3],tc[3],tc[3]/td[3],t4[3],t4[3]/td[3],oomb_cpu_lowp_isa());
  /* int8 */
  int8_t *xq=malloc((long)B*C),*wq=malloc((long)OC*C); int32_t *acc=malloc(4L*B*OC); float *xs=malloc(4L*B),*ws=malloc(4L*OC);
  oomb_cpu_quantize_rows_i8_run(wq,ws,w,OC,C);
  double ti[7],tk[7],tq[7];
  for(int r=0;r<7;r++){
    double t=now(); for(int k=0;k<5;k++) oomb_cpu_quantize_rows_i8_run(xq,xs,x,B,C); tq[r]=(now()-t)/5*1e3;
    t=now(); for(int k=0;k<5;k++) oomb_cpu_linear_i8_run(out,acc,xq,xs,wq,ws,bias,B,C,OC); ti[r]=(now()-t)/5*1e3;
    t=now(); for(int k=0;k<5;k++) oomb_cpu_linear_i8_run(out,acc,xq,xs,wq,ws,bias,B,784,OC); tk[r]=(now()-t)/5*1e3;
  }
  qsort(ti,7,8,cmpd);qsort(tk,7,8,cmpd);qsort(tq,7,8,cmpd);
  printf("int8 C=1024 %.3f ms  C=784 %.3f ms  quantize_rows_i8 (256 x 1024) %.3f ms\n",ti[3],tk[3],tq[3]);
}
